-- The product versions of silver's SCD Type 2 table.
select
    product_sk,
    product_id,
    name as product_name,
    category,
    subcategory,
    brand,
    unit_price as list_price,
    cost as unit_cost,
    is_active,
    change_hash,
    version_number,
    valid_from,
    valid_to,
    is_current
from {{ source('silver', 'products') }}
