{% test positive(model, column_name) %}
-- Rows whose value is zero or negative (nulls are not_null's business).
select * from {{ model }} where {{ column_name }} <= 0
{% endtest %}
