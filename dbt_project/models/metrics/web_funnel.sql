{{ config(
    materialized='incremental',
    incremental_strategy='replace_where',
    window_column='event_date',
    on_schema_change='append_new_columns',
) }}
-- Grain: one row per day. The conversion funnel over sessions: how many sessions reached each
-- step (page view -> product view -> add to cart -> checkout -> purchase), and each step's rate
-- against the sessions of the day; and the abandoned carts: sessions that added to a cart and
-- made no purchase that day.
with sessions as (
    select
        event_date,
        session_id,
        max(case when event_type = 'page_view' then 1 else 0 end) as viewed,
        max(case when event_type = 'product_view' then 1 else 0 end) as viewed_product,
        max(case when event_type = 'add_to_cart' then 1 else 0 end) as added_to_cart,
        max(case when event_type = 'checkout' then 1 else 0 end) as checked_out,
        max(case when event_type = 'purchase' then 1 else 0 end) as purchased
    from {{ ref('stg_web_events') }}
    where {{ in_window('event_date') }}
    group by event_date, session_id
)

select
    event_date,
    count(*) as sessions,
    sum(viewed) as page_view_sessions,
    sum(viewed_product) as product_view_sessions,
    sum(added_to_cart) as add_to_cart_sessions,
    sum(checked_out) as checkout_sessions,
    sum(purchased) as purchase_sessions,
    cast(sum(viewed_product) / count(*) as decimal(9, 4)) as product_view_rate,
    cast(sum(added_to_cart) / count(*) as decimal(9, 4)) as add_to_cart_rate,
    cast(sum(checked_out) / count(*) as decimal(9, 4)) as checkout_rate,
    cast(sum(purchased) / count(*) as decimal(9, 4)) as conversion_rate,
    sum(case when added_to_cart = 1 and purchased = 0 then 1 else 0 end) as abandoned_cart_sessions,
    -- null on a day without carts: no share of nothing.
    cast(
        sum(case when added_to_cart = 1 and purchased = 0 then 1 else 0 end) / nullif(sum(added_to_cart), 0)
        as decimal(9, 4)
    ) as cart_abandonment_rate
from sessions
group by event_date
