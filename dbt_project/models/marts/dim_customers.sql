-- Grain: one row per customer version (SCD Type 2), keyed by the surrogate customer_sk.
-- valid_to is null on the current version; a sale belongs to the version whose
-- [valid_from, valid_to) holds its timestamp (see fact_sales).
select
    customer_sk,
    customer_id,
    first_name,
    last_name,
    city,
    country,
    segment,
    registration_date,
    version_number,
    valid_from,
    valid_to,
    is_current,
    change_hash
from {{ ref('stg_customers') }}
