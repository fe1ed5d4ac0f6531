{{ config(
    materialized='incremental',
    incremental_strategy='replace_where',
    window_column='sale_date',
) }}
-- Grain: one row per day and product sold that day (completed sales), with its rank by revenue.
with completed as (
    select f.sale_date, f.product_id, f.quantity, f.amount, f.margin_amount, p.product_name, p.category, p.brand
    from {{ ref('fact_sales') }} f
    join {{ ref('dim_products') }} p on p.product_sk = f.product_sk
    where f.is_completed and {{ in_window('f.sale_date') }}
),

per_product as (
    select
        sale_date,
        product_id,
        max(product_name) as product_name,
        max(category) as category,
        max(brand) as brand,
        count(*) as orders,
        sum(quantity) as units,
        cast(sum(amount) as decimal(18, 2)) as revenue,
        cast(sum(margin_amount) as decimal(18, 2)) as margin
    from completed
    group by sale_date, product_id
)

select
    *,
    cast(margin / revenue as decimal(9, 4)) as margin_rate,
    rank() over (partition by sale_date order by revenue desc, product_id) as revenue_rank
from per_product
