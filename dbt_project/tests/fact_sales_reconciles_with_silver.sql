{{ config(meta={'dagster': {'ref': {'name': 'fact_sales'}}}) }}
-- Days of the window where fact_sales and silver disagree on the number of sales or their total.
with fact as (
    select sale_date, count(*) as sales, sum(amount) as amount
    from {{ ref('fact_sales') }}
    where {{ in_window('sale_date') }}
    group by sale_date
),

silver as (
    select sale_date, count(*) as sales, sum(amount) as amount
    from {{ ref('stg_transactions') }}
    where {{ in_window('sale_date') }}
    group by sale_date
)

select coalesce(f.sale_date, s.sale_date) as sale_date, f.sales as fact_sales, s.sales as silver_sales,
    f.amount as fact_amount, s.amount as silver_amount
from fact f
full outer join silver s on f.sale_date = s.sale_date
where f.sales is null or s.sales is null or f.sales != s.sales or f.amount != s.amount
