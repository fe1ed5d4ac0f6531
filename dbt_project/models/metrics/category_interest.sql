{{ config(
    materialized='incremental',
    incremental_strategy='replace_where',
    window_column='event_date',
) }}
-- Grain: one row per day and product category with web events on its products that day. What the
-- sessions looked at, put in a cart and bought, and the views that did not end in a purchase of
-- the category in the same session that day (viewed_not_bought), ranked. A product's category is
-- the one of its version in force at the event (the facts' point-in-time rule).
with product_events as (
    select event_id, event_date, session_id, event_type, product_id, event_ts
    from {{ ref('stg_web_events') }}
    where {{ in_window('event_date') }}
        and event_type in ('product_view', 'add_to_cart', 'purchase')
        and product_id is not null
),

product_versions as (
    {{ version_in_force('product_events', ref('dim_products'), 'product_id', 'product_sk',
                        row_key='event_id', at='event_ts') }}
),

categorized as (
    -- A product the dimension does not know (web events are not checked against the catalogue)
    -- is counted, under '(unknown)'.
    select e.event_date, e.session_id, e.event_type, coalesce(p.category, '(unknown)') as category
    from product_events e
    left join product_versions v on v.event_id = e.event_id
    left join {{ ref('dim_products') }} p on p.product_sk = v.product_sk
),

per_session as (
    select
        event_date,
        session_id,
        category,
        count_if(event_type = 'product_view') as product_views,
        count_if(event_type = 'add_to_cart') as add_to_carts,
        count_if(event_type = 'purchase') as purchases
    from categorized
    group by event_date, session_id, category
),

per_category as (
    select
        event_date,
        category,
        count(*) as sessions,
        sum(product_views) as product_views,
        sum(add_to_carts) as add_to_carts,
        sum(purchases) as purchases,
        sum(case when purchases = 0 then product_views else 0 end) as viewed_not_bought,
        count_if(product_views > 0 and purchases = 0) as viewed_not_bought_sessions
    from per_session
    group by event_date, category
)

select
    *,
    rank() over (partition by event_date order by viewed_not_bought desc, category) as viewed_not_bought_rank
from per_category
