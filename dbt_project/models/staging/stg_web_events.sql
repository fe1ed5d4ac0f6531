-- Silver web events, one row per event, with the day of their Dagster partition.
select
    event_id,
    session_id,
    customer_id,
    event_type,
    product_id,
    device,
    event_ts,
    partition_date as event_date
from {{ source('silver', 'web_events') }}
