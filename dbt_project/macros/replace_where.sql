{#- A `replace_where` incremental strategy for Delta: the window's rows of the target are replaced
    by the model's rows in one atomic Delta commit (INSERT INTO ... REPLACE WHERE). Unlike
    `insert_overwrite`, a day that now has no rows is emptied too, and the table need not be
    Hive-partitioned by day (a day is a few hundred rows: daily partitions would be tiny files).

    Configure it with `incremental_strategy='replace_where'` and `window_column='<date column>'`.
    These override dbt-spark's macros of the same names, adding the strategy and keeping the rest. -#}

{% macro dbt_spark_validate_get_incremental_strategy(raw_strategy, file_format) %}
  {% if raw_strategy == 'replace_where' %}
    {% if file_format != 'delta' %}
      {{ exceptions.raise_compiler_error("incremental_strategy 'replace_where' needs file_format 'delta'") }}
    {% endif %}
    {% if not config.get('window_column') %}
      {{ exceptions.raise_compiler_error("incremental_strategy 'replace_where' needs a window_column config") }}
    {% endif %}
    {% do return(raw_strategy) %}
  {% endif %}
  {% do return(dbt.dbt_spark_validate_get_incremental_strategy(raw_strategy, file_format)) %}
{% endmacro %}


{% macro dbt_spark_get_incremental_sql(strategy, source, target, existing, unique_key, incremental_predicates) %}
  {%- if strategy == 'replace_where' -%}
    {%- set dest_columns = adapter.get_columns_in_relation(target) -%}
    insert into {{ target }}
    replace where {{ in_window(config.get('window_column')) }}
    select {{ dest_columns | map(attribute='quoted') | join(', ') }} from {{ source }}
  {%- else -%}
    {{ dbt.dbt_spark_get_incremental_sql(strategy, source, target, existing, unique_key, incremental_predicates) }}
  {%- endif -%}
{% endmacro %}
