{{ config(
    materialized='incremental',
    incremental_strategy='replace_where',
    window_column='sale_date',
) }}
-- Grain: one row per day, breakdown and breakdown value. breakdown 'total' (value 'all') is the
-- day as a whole; 'category', 'channel' and 'payment_method' split it. Revenue counts completed
-- sales only; orders are completed sales.
{% set breakdowns = {
    'total': "'all'",
    'category': 'f.category',
    'channel': 'f.channel',
    'payment_method': 'f.payment_method',
} %}

with completed as (
    select f.*, p.category
    from {{ ref('fact_sales') }} f
    join {{ ref('dim_products') }} p on p.product_sk = f.product_sk
    where f.is_completed and {{ in_window('f.sale_date') }}
)

{% for breakdown, value in breakdowns.items() %}
select
    f.sale_date,
    '{{ breakdown }}' as breakdown,
    {{ value }} as breakdown_value,
    cast(sum(f.amount) as decimal(18, 2)) as revenue,
    cast(sum(f.margin_amount) as decimal(18, 2)) as margin,
    count(*) as orders,
    sum(f.quantity) as units,
    cast(sum(f.amount) / count(*) as decimal(18, 2)) as mean_basket,
    count(distinct f.customer_id) as distinct_customers
from completed f
group by f.sale_date, {{ value }}
{% if not loop.last %}union all{% endif %}
{% endfor %}
