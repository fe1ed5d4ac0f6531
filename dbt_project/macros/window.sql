{#- The Dagster partition window, [min_date, max_date), passed as vars on every Dagster run. -#}

{% macro in_window(column) -%}
  {%- if var('min_date', none) and var('max_date', none) -%}
    {{ column }} >= date'{{ var("min_date") }}' and {{ column }} < date'{{ var("max_date") }}'
  {%- else -%}
    true
  {%- endif -%}
{%- endmacro %}

