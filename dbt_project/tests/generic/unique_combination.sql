{% test unique_combination(model, columns) %}
-- Combinations of `columns` that appear more than once: the model's grain is broken.
select {{ columns | join(', ') }}, count(*) as occurrences
from {{ model }}
group by {{ columns | join(', ') }}
having count(*) > 1
{% endtest %}
