-- Grain: one row per calendar day, from the first day of the history to the end of next year.
with days as (
    select explode(sequence(
        date'{{ var("history_start") }}',
        make_date(year(current_date()) + 1, 12, 31),
        interval 1 day
    )) as date_day
),

holidays as (
    select month, day, holiday_name, first_year from {{ ref('moroccan_holidays') }}
)

select
    cast(date_format(d.date_day, 'yyyyMMdd') as int) as date_key,
    d.date_day,
    year(d.date_day) as year,
    quarter(d.date_day) as quarter,
    month(d.date_day) as month,
    date_format(d.date_day, 'MMMM') as month_name,
    weekofyear(d.date_day) as iso_week,
    dayofmonth(d.date_day) as day_of_month,
    -- ISO day of week: 1 = Monday ... 7 = Sunday.
    (dayofweek(d.date_day) + 5) % 7 + 1 as day_of_week,
    date_format(d.date_day, 'EEEE') as day_name,
    dayofweek(d.date_day) in (1, 7) as is_weekend,
    h.holiday_name is not null as is_holiday,
    h.holiday_name
from days d
left join holidays h
    on month(d.date_day) = h.month
    and dayofmonth(d.date_day) = h.day
    and year(d.date_day) >= h.first_year
