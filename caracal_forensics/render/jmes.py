"""JMESPath expressions compiled to Python closures, for ``--query`` over many events.

jmespath's TreeInterpreter walks the parsed tree for every event, dispatching on each
node's type by name; over a million events that walk is most of ``--query``'s time. This
module turns the same parsed tree into nested closures once, each a transcription of the
interpreter's ``visit_<type>`` method (same None, falsy, comparison and projection
rules), and lets the interpreter evaluate what it does not transcribe (expression
references, e.g. ``sort_by(a, &b)``). Tests compare both on random expressions.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from jmespath import visitor

Evaluate = Callable[[Any], Any]


def compile_parsed(parsed: dict[str, Any]) -> Evaluate:
    """A function of the current value that equals ``TreeInterpreter().visit(parsed, v)``."""
    return _Compiler(visitor.TreeInterpreter()).build(parsed)


def _is_false(value: Any) -> bool:
    # as TreeInterpreter._is_false: JMESPath's falsy values, by equality on purpose
    return value == "" or value == [] or value == {} or value is None or value is False


def _project_each(project: Evaluate, items) -> list:
    """Each item projected, the None results dropped (every JMESPath projection)."""
    collected = []
    for element in items:
        current = project(element)
        if current is not None:
            collected.append(current)
    return collected


class _Compiler:
    def __init__(self, interpreter: visitor.TreeInterpreter) -> None:
        self.interpreter = interpreter

    def build(self, node: dict[str, Any]) -> Evaluate:
        make = getattr(self, "_" + node["type"], None)
        if make is None:  # expref and anything newer: the interpreter evaluates it
            interpreter = self.interpreter
            return lambda value: interpreter.visit(node, value)
        return make(node)

    def _children(self, node: dict[str, Any]) -> list[Evaluate]:
        return [self.build(child) for child in node["children"]]

    def _field(self, node):
        key = node["value"]

        def field(value):
            try:
                return value.get(key)
            except AttributeError:
                return None

        return field

    def _chain(self, node):
        steps = self._children(node)

        def chain(value):
            for step in steps:
                value = step(value)
            return value

        return chain

    _subexpression = _index_expression = _pipe = _chain

    def _comparator(self, node):
        left, right = self._children(node)
        op = node["value"]
        compare = visitor.TreeInterpreter.COMPARATOR_FUNC[op]
        if op in visitor.TreeInterpreter._EQUALITY_OPS:
            return lambda value: compare(left(value), right(value))
        comparable = visitor._is_comparable

        def ordered(value):
            a, b = left(value), right(value)
            if not (comparable(a) and comparable(b)):
                return None
            return compare(a, b)

        return ordered

    def _current(self, node):
        return lambda value: value

    _identity = _current

    def _function_expression(self, node):
        args = self._children(node)
        name = node["value"]
        call = self.interpreter._functions.call_function
        return lambda value: call(name, [arg(value) for arg in args])

    def _filter_projection(self, node):
        base, project, condition = self._children(node)

        def filter_projection(value):
            items = base(value)
            if not isinstance(items, list):
                return None
            collected = []
            for element in items:
                if not _is_false(condition(element)):
                    current = project(element)
                    if current is not None:
                        collected.append(current)
            return collected

        return filter_projection

    def _flatten(self, node):
        (base,) = self._children(node)

        def flatten(value):
            items = base(value)
            if not isinstance(items, list):
                return None
            merged = []
            for element in items:
                if isinstance(element, list):
                    merged.extend(element)
                else:
                    merged.append(element)
            return merged

        return flatten

    def _index(self, node):
        position = node["value"]

        def index(value):
            if not isinstance(value, list):
                return None
            try:
                return value[position]
            except IndexError:
                return None

        return index

    def _slice(self, node):
        bounds = slice(*node["children"])
        return lambda value: value[bounds] if isinstance(value, list) else None

    def _key_val_pair(self, node):
        return self.build(node["children"][0])

    def _literal(self, node):
        constant = node["value"]
        return lambda value: constant

    def _multi_select_dict(self, node):
        pairs = [(child["value"], self.build(child)) for child in node["children"]]
        make_dict = self.interpreter._dict_cls

        def multi_select_dict(value):
            if value is None:
                return None
            collected = make_dict()
            for key, evaluate in pairs:
                collected[key] = evaluate(value)
            return collected

        return multi_select_dict

    def _multi_select_list(self, node):
        items = self._children(node)

        def multi_select_list(value):
            if value is None:
                return None
            return [evaluate(value) for evaluate in items]

        return multi_select_list

    def _or_expression(self, node):
        left, right = self._children(node)

        def or_expression(value):
            matched = left(value)
            return right(value) if _is_false(matched) else matched

        return or_expression

    def _and_expression(self, node):
        left, right = self._children(node)

        def and_expression(value):
            matched = left(value)
            return matched if _is_false(matched) else right(value)

        return and_expression

    def _not_expression(self, node):
        (operand,) = self._children(node)
        is_number = visitor._is_actual_number

        def not_expression(value):
            result = operand(value)
            if is_number(result) and result == 0:
                return False
            return not result

        return not_expression

    def _projection(self, node):
        base, project = self._children(node)

        def projection(value):
            items = base(value)
            return _project_each(project, items) if isinstance(items, list) else None

        return projection

    def _value_projection(self, node):
        base, project = self._children(node)

        def value_projection(value):
            items = base(value)
            try:
                items = items.values()
            except AttributeError:
                return None
            return _project_each(project, items)

        return value_projection


def nodes(node: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """Every node of a parsed expression (``jmespath.compile(...).parsed``), depth first:
    what ``Query.fields`` and the SQL compiler read to know the fields it names."""
    yield node
    for child in node.get("children", ()):
        if isinstance(child, dict):
            yield from nodes(child)


def conjuncts(node: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """The operands of a top-level ``a && b && ...`` chain, in order (the node itself
    otherwise)."""
    if node.get("type") == "and_expression":
        for child in node["children"]:
            yield from conjuncts(child)
    else:
        yield node
