{% macro version_in_force(sales, dimension, key, surrogate) -%}
  {#- For each sale of `sales`, the `surrogate` key of the `dimension` version in force at its
      transaction_ts: the version whose [valid_from, valid_to) holds it, or, for a sale older than
      the first version, the first version (silver's rule). One row per transaction_id. -#}
  select transaction_id, {{ surrogate }}
  from (
      select
          s.transaction_id,
          d.{{ surrogate }},
          row_number() over (
              partition by s.transaction_id
              order by
                  case when d.valid_from <= s.transaction_ts
                      and (d.valid_to is null or s.transaction_ts < d.valid_to) then 0 else 1 end,
                  d.valid_from
          ) as pick
      from {{ sales }} s
      join {{ dimension }} d on d.{{ key }} = s.{{ key }}
  ) versions
  where pick = 1
{%- endmacro %}
