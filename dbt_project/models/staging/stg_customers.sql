-- The customer versions of silver's SCD Type 2 table.
select
    customer_sk,
    customer_id,
    first_name,
    last_name,
    city,
    country,
    segment,
    registration_date,
    change_hash,
    version_number,
    valid_from,
    valid_to,
    is_current
from {{ source('silver', 'customers') }}
