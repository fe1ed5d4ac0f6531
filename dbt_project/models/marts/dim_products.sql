-- Grain: one row per product version (SCD Type 2), keyed by the surrogate product_sk.
select
    product_sk,
    product_id,
    product_name,
    category,
    subcategory,
    brand,
    list_price,
    unit_cost,
    is_active,
    version_number,
    valid_from,
    valid_to,
    is_current,
    change_hash
from {{ ref('stg_products') }}
