{#- The Dagster partition window, [min_date, max_date), passed as vars on every Dagster run. -#}

{% macro in_window(column) -%}
  {%- if var('min_date', none) and var('max_date', none) -%}
    {{ column }} >= date'{{ var("min_date") }}' and {{ column }} < date'{{ var("max_date") }}'
  {%- else -%}
    true
  {%- endif -%}
{%- endmacro %}


{% macro window_end_date() -%}
  {#- The last day of the window (or of the data, without a window): metrics "as of" this day. -#}
  {%- if var('max_date', none) -%}
    date_sub(date'{{ var("max_date") }}', 1)
  {%- else -%}
    current_date()
  {%- endif -%}
{%- endmacro %}
