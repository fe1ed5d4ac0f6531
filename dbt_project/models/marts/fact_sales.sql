{{ config(
    materialized='incremental',
    incremental_strategy='replace_where',
    window_column='sale_date',
    on_schema_change='append_new_columns',
) }}
-- depends_on: {{ ref('dim_date') }}
-- (date_key is computed here and must exist in dim_date: its relationship test is built with it.)
-- Grain: one row per sale (transaction_id), whatever its status. Each sale points at the customer
-- and product versions in force at its timestamp (point in time): the version whose
-- [valid_from, valid_to) holds it, or, for a sale older than the first version (its record arrived
-- after the sale), the first version, the same rule silver uses.

with sales as (
    select * from {{ ref('stg_transactions') }}
    where {{ in_window('sale_date') }}
),

customer_versions as (
    {{ version_in_force('sales', ref('dim_customers'), 'customer_id', 'customer_sk') }}
),

product_versions as (
    {{ version_in_force('sales', ref('dim_products'), 'product_id', 'product_sk') }}
)

select
    s.transaction_id,
    cv.customer_sk,
    pv.product_sk,
    cast(date_format(s.sale_date, 'yyyyMMdd') as int) as date_key,
    s.sale_date,
    s.transaction_ts,
    s.hour_of_day,
    s.customer_id,
    s.product_id,
    s.quantity,
    s.unit_price,
    s.amount,
    s.cost_amount,
    s.amount - s.cost_amount as margin_amount,
    s.currency,
    s.payment_method,
    s.channel,
    s.device,
    s.status,
    s.status = 'completed' as is_completed,
    s.city,
    s.country,
    s.is_foreign,
    s.customer_purchase_seq
from sales s
left join customer_versions cv on cv.transaction_id = s.transaction_id
left join product_versions pv on pv.transaction_id = s.transaction_id
