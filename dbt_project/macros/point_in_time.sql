{% macro version_in_force(rows, dimension, key, surrogate, row_key='transaction_id', at='transaction_ts') -%}
  {#- For each row of `rows` (a sale by default), the `surrogate` key of the `dimension` version in
      force at its time `at`: the version whose [valid_from, valid_to) holds it, or, for a row older
      than the first version, the first version (silver's rule). One row per `row_key`. -#}
  select {{ row_key }}, {{ surrogate }}
  from (
      select
          s.{{ row_key }},
          d.{{ surrogate }},
          row_number() over (
              partition by s.{{ row_key }}
              order by
                  case when d.valid_from <= s.{{ at }}
                      and (d.valid_to is null or s.{{ at }} < d.valid_to) then 0 else 1 end,
                  d.valid_from
          ) as pick
      from {{ rows }} s
      join {{ dimension }} d on d.{{ key }} = s.{{ key }}
  ) versions
  where pick = 1
{%- endmacro %}
