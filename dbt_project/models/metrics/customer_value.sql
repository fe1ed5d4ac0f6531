-- Grain: one row per customer who ever completed a purchase: recency, frequency and monetary
-- value (RFM) as of the latest day the facts hold, with 1-5 scores (5 = best). Current state, not
-- a partition: whichever days a run rebuilt, it is as of the latest sale, as a fresh build is.
with as_of as (
    select max(sale_date) as as_of_date from {{ ref('fact_sales') }}
),

purchases as (
    select f.customer_id, f.sale_date, f.amount
    from {{ ref('fact_sales') }} f
    cross join as_of
    where f.is_completed and f.sale_date <= as_of.as_of_date
),

per_customer as (
    select
        customer_id,
        min(sale_date) as first_purchase_date,
        max(sale_date) as last_purchase_date,
        count(*) as frequency,
        cast(sum(amount) as decimal(18, 2)) as monetary
    from purchases
    group by customer_id
)

select
    c.customer_id,
    d.segment as current_segment,
    a.as_of_date,
    c.first_purchase_date,
    c.last_purchase_date,
    datediff(a.as_of_date, c.last_purchase_date) as recency_days,
    c.frequency,
    c.monetary,
    -- Ties are broken by customer_id, so the same data always gives the same scores.
    ntile(5) over (order by datediff(a.as_of_date, c.last_purchase_date) desc, c.customer_id) as recency_score,
    ntile(5) over (order by c.frequency, c.customer_id) as frequency_score,
    ntile(5) over (order by c.monetary, c.customer_id) as monetary_score
from per_customer c
cross join as_of a
left join {{ ref('dim_customers') }} d on d.customer_id = c.customer_id and d.is_current
