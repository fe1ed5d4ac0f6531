-- One row per silver transaction, renamed and typed for the marts. The sale's day is its
-- partition_date, the same day as the Dagster partition that brought it in.
select
    transaction_id,
    customer_id,
    product_id,
    partition_date as sale_date,
    transaction_ts,
    hour_of_day,
    quantity,
    unit_price,
    total_amount as amount,
    cost_amount,
    currency,
    payment_method,
    channel,
    device,
    status,
    city,
    country,
    is_foreign,
    customer_purchase_seq
from {{ source('silver', 'transactions') }}
