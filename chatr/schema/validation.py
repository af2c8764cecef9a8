"""Document validation whose cost is bounded before and while the rules run.

Validation runs on the event loop, so a document that is slow to validate stalls the whole
instance for everyone. The parser's token limit alone does not prevent that: some checks grow
faster than the document.

- Fragments multiply: a fragment that spreads the next one four times, nine deep, is 1 KB of
  text and 260,000 fields once expanded, and strawberry's depth and alias limiters walk every
  one of them. `measure` counts the expanded selections in one pass (each fragment once) and
  documents over `Settings.max_selections` are refused before any rule runs.
- Field merging (the spec's OverlappingFieldsCanBeMerged) compares fields that share a response
  name pairwise, recursively: 400 repeated `me { a b }` take seconds. `repeated_pairs` counts
  those pairs first and refuses over MAX_REPEATED_PAIRS; as a backstop, graphql-core's own
  metering of that work ("complexity units", 500,000 by default, ~3 s here) is cut to
  OVERLAP_BUDGET by `BoundedOverlapRule`.
- Everything else grows with what the rules visit: operations (MAX_OPERATIONS), fragments
  spread within fragments (MAX_FRAGMENT_NESTING; strawberry's depth limiter recurses per level
  and a long chain exhausts the stack), list and object literals (MAX_LITERAL_ITEMS).

All these checks are linear, take about a millisecond, and answer GRAPHQL_VALIDATION_FAILED
with a message that says what to change. What remains is graphql-core's linear traversal of a
valid document, at most MAX_OPERATIONS operations and the parser's token limit
(bench/validation.py measures both).

Documents that validated cleanly are kept for texts that come back (chatr.schema.document_cache:
admitted on their second arrival, so one-off documents never grow the heap), and in production
no error carries a "Did you mean" hint (`hide_suggestions`).
"""

from __future__ import annotations

import functools
import weakref
from collections import Counter
from collections.abc import Callable, Iterator
from typing import Any, ClassVar

from graphql import (
    DirectiveNode,
    DocumentNode,
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLError,
    GraphQLSchema,
    InlineFragmentNode,
    ListValueNode,
    Node,
    ObjectValueNode,
    OperationDefinitionNode,
    SelectionSetNode,
    parse,
    specified_rules,
    validate,
)
from graphql.validation import (
    ASTValidationRule,
    NoSchemaIntrospectionCustomRule,
    OverlappingFieldsCanBeMergedRule,
    ValidationContext,
)
from graphql.validation.validate import ValidationAbortedError
from strawberry.extensions import SchemaExtension
from strawberry.extensions.max_aliases import create_validator as alias_validator
from strawberry.extensions.query_depth_limiter import create_validator as depth_validator
from strawberry.schema.schema import StrawberryGraphQLCoreExecutionContext
from strawberry.schema.validation_rules.maybe_null import MaybeNullValidationRule
from strawberry.schema.validation_rules.one_of import OneOfInputValidationRule

from chatr.schema.document_cache import DocumentCache
from chatr.settings import Settings

#: graphql-core complexity units the field-merging check may spend on one document. A unit is
#: roughly one field comparison or one selection set considered, ~4 µs each on the 2-core
#: machine: 4,000 units keep the worst document near 15 ms (bench/validation.py).
OVERLAP_BUDGET = 4_000

#: Pairs of same-named fields in one selection set a document may have (`repeated_pairs`):
#: a client whose twelve colocated fragments each repeat `id`, `__typename` and a few fields
#: has ~350; 330 repeated `me` fields have 54,000.
MAX_REPEATED_PAIRS = 1_000

#: List and input-object items written in a document (`literal_items`): 100 user ids for
#: `presenceChanged` fit; a group's 1,000 invitees go in a variable.
MAX_LITERAL_ITEMS = 150

#: Operations in one document: each is checked on its own (its variables traced through its
#: fragments), and a request runs only one of them.
MAX_OPERATIONS = 5

#: Fragments spread within fragments, this many deep at most: strawberry's depth limiter
#: recurses once per level (a chain of 250 exhausts Python's stack), and so does `measure`.
MAX_FRAGMENT_NESTING = 30

TOO_COMPLEX = (
    "The document repeats the same fields too often to check it (fields sharing a response "
    "name are compared pairwise): select each field once, or use fewer repeated fragments."
)


class BoundedOverlapRule(OverlappingFieldsCanBeMergedRule):
    """graphql-core's field-merging rule, with OVERLAP_BUDGET instead of its default budget."""

    budget: ClassVar[int] = OVERLAP_BUDGET

    def __init__(self, context: ValidationContext) -> None:
        super().__init__(context)
        self.rule_context.remaining_complexity_budget = self.budget

    def enter_selection_set(self, *args: Any) -> None:
        try:
            super().enter_selection_set(*args)
        except ValidationAbortedError:
            if self.rule_context.remaining_complexity_budget >= 0:
                raise  # too many errors: graphql-core's own abort, worded by it
            raise ValidationAbortedError(TOO_COMPLEX) from None


def fragment_nesting(document: DocumentNode) -> int:
    """How many fragments deep the deepest spread chain goes (1: a fragment that spreads no
    other). Computed without recursion, so a chain of hundreds is measured, not a crash;
    spreads that close a cycle or name no fragment count nothing (the rules report them)."""
    spreads: dict[str, set[str]] = {}
    for definition in document.definitions:
        if isinstance(definition, FragmentDefinitionNode):
            found: set[str] = set()
            pending: list[SelectionSetNode] = [definition.selection_set]
            while pending:
                for selection in pending.pop().selections:
                    if isinstance(selection, FragmentSpreadNode):
                        found.add(selection.name.value)
                    elif (
                        isinstance(selection, FieldNode | InlineFragmentNode)
                        and selection.selection_set is not None
                    ):
                        pending.append(selection.selection_set)
            spreads[definition.name.value] = found
    depth: dict[str, int] = {}
    for start in spreads:
        stack: list[tuple[str, bool]] = [(start, False)]
        on_path: set[str] = set()
        while stack:
            name, done = stack.pop()
            if done:
                on_path.discard(name)
                depth[name] = 1 + max(
                    (depth.get(child, 0) for child in spreads[name] if child not in on_path),
                    default=0,
                )
            elif name not in depth and name not in on_path:
                on_path.add(name)
                stack.append((name, True))
                stack.extend(
                    (child, False)
                    for child in spreads[name]
                    if child in spreads and child not in depth and child not in on_path
                )
    return max(depth.values(), default=0)


def measure(document: DocumentNode, ceiling: int) -> int:
    """Field selections of every operation once fragments are expanded (capped at `ceiling`
    + 1). Each fragment is counted once and reused; a spread of an unknown fragment or one in
    a cycle counts nothing (the validation rules report those)."""
    fragments = {
        definition.name.value: definition
        for definition in document.definitions
        if isinstance(definition, FragmentDefinitionNode)
    }
    sizes: dict[str, int] = {}
    cap = ceiling + 1

    def size_of(selection_set: SelectionSetNode | None) -> int:
        total = 0
        for selection in selection_set.selections if selection_set is not None else ():
            if isinstance(selection, FieldNode):
                total += 1 + size_of(selection.selection_set)
            elif isinstance(selection, InlineFragmentNode):
                total += size_of(selection.selection_set)
            elif isinstance(selection, FragmentSpreadNode):
                total += fragment_size(selection.name.value)
            if total >= cap:
                return cap
        return total

    def fragment_size(name: str) -> int:
        if name not in sizes:
            definition = fragments.get(name)
            sizes[name] = 0  # while counting it: a cycle adds nothing
            sizes[name] = 0 if definition is None else size_of(definition.selection_set)
        return sizes[name]

    total = 0
    for definition in document.definitions:
        if isinstance(definition, OperationDefinitionNode):
            total = min(cap, total + size_of(definition.selection_set))
    return total


def repeated_pairs(document: DocumentNode, ceiling: int) -> int:
    """Pairs of fields that share a response name within one selection set (inline fragments
    and fragment spreads flattened into it), summed over every selection set of the document,
    capped at `ceiling` + 1: what the field-merging rule compares pairwise at the least.

    Each fragment's names are gathered once and merged per spread; the merging work is capped
    too (a document that needs more of it counts as over the ceiling).
    """
    fragments = {
        definition.name.value: definition
        for definition in document.definitions
        if isinstance(definition, FragmentDefinitionNode)
    }
    names_of_fragment: dict[str, Counter[str]] = {}
    cap = ceiling + 1
    work = 0
    work_limit = 50 * cap

    def names(selection_set: SelectionSetNode) -> Counter[str]:
        nonlocal work
        found: Counter[str] = Counter()
        for selection in selection_set.selections:
            if isinstance(selection, FieldNode):
                found[(selection.alias or selection.name).value] += 1
            elif isinstance(selection, InlineFragmentNode):
                found.update(names(selection.selection_set))
            elif isinstance(selection, FragmentSpreadNode):
                spread = fragment_names(selection.name.value)
                work += len(spread)
                found.update(spread)
            work += 1
        return found

    def fragment_names(name: str) -> Counter[str]:
        if name not in names_of_fragment:
            definition = fragments.get(name)
            names_of_fragment[name] = Counter()  # while gathering it: a cycle adds nothing
            if definition is not None:
                names_of_fragment[name] = names(definition.selection_set)
        return names_of_fragment[name]

    total = 0
    pending: list[SelectionSetNode] = [
        definition.selection_set
        for definition in document.definitions
        if isinstance(definition, OperationDefinitionNode | FragmentDefinitionNode)
    ]
    while pending:
        selection_set = pending.pop()
        total += sum(count * (count - 1) // 2 for count in names(selection_set).values())
        if total >= cap or work > work_limit:
            return cap
        for selection in selection_set.selections:
            if isinstance(selection, FieldNode | InlineFragmentNode) and selection.selection_set:
                pending.append(selection.selection_set)
    return total


def literal_items(document: DocumentNode, ceiling: int) -> int:
    """Items of list and input-object literals written in the document (arguments, directive
    arguments, variable defaults), capped at `ceiling` + 1. Every rule visits each of them;
    long lists belong in variables, which are coerced once, without the visitors."""
    cap = ceiling + 1
    total = 0
    pending: list[Node] = list(document.definitions)
    while pending and total < cap:
        node = pending.pop()
        if isinstance(node, ListValueNode):
            total += len(node.values)
            pending.extend(node.values)
        elif isinstance(node, ObjectValueNode):
            total += len(node.fields)
            pending.extend(field.value for field in node.fields)
        elif isinstance(node, OperationDefinitionNode):
            pending.extend(
                d.default_value for d in node.variable_definitions or () if d.default_value
            )
            pending.extend(node.directives or ())
            pending.append(node.selection_set)
        elif isinstance(node, FragmentDefinitionNode | InlineFragmentNode):
            pending.extend(node.directives or ())
            pending.append(node.selection_set)
        elif isinstance(node, SelectionSetNode):
            pending.extend(node.selections)
        elif isinstance(node, FieldNode):
            pending.extend(argument.value for argument in node.arguments or ())
            pending.extend(node.directives or ())
            if node.selection_set is not None:
                pending.append(node.selection_set)
        elif isinstance(node, FragmentSpreadNode):
            pending.extend(node.directives or ())
        elif isinstance(node, DirectiveNode):
            pending.extend(argument.value for argument in node.arguments or ())
    return min(total, cap)


def rules_for(settings: Settings) -> tuple[type[ASTValidationRule], ...]:
    """The spec's rules (field merging bounded), strawberry's own, and chatr's limits."""
    rules: list[type[ASTValidationRule]] = [
        BoundedOverlapRule if rule is OverlappingFieldsCanBeMergedRule else rule
        for rule in specified_rules
    ]
    rules += [
        MaybeNullValidationRule,
        OneOfInputValidationRule,
        depth_validator(settings.max_query_depth, None, None),
        alias_validator(settings.max_aliases),
    ]
    if settings.is_production:
        rules.append(NoSchemaIntrospectionCustomRule)
    return tuple(rules)


def validator(
    schema: GraphQLSchema, settings: Settings
) -> Callable[[DocumentNode], list[GraphQLError]]:
    """The one way a document is checked: its size, then the rules."""
    rules = rules_for(settings)
    hide_suggestions = settings.is_production
    ceiling = settings.max_selections

    def check(document: DocumentNode) -> list[GraphQLError]:
        operations = sum(isinstance(d, OperationDefinitionNode) for d in document.definitions)
        if operations > MAX_OPERATIONS:
            return [
                GraphQLError(
                    f"The document defines {operations} operations; at most {MAX_OPERATIONS} "
                    "are allowed."
                )
            ]
        if fragment_nesting(document) > MAX_FRAGMENT_NESTING:
            return [
                GraphQLError(
                    f"Fragments spread inside each other more than {MAX_FRAGMENT_NESTING} deep."
                )
            ]
        selections = measure(document, ceiling)
        if selections > ceiling:
            return [
                GraphQLError(
                    f"The document selects more than {ceiling} fields once its fragments are "
                    "expanded; split it into smaller ones."
                )
            ]
        if repeated_pairs(document, MAX_REPEATED_PAIRS) > MAX_REPEATED_PAIRS:
            return [GraphQLError(TOO_COMPLEX)]
        if literal_items(document, MAX_LITERAL_ITEMS) > MAX_LITERAL_ITEMS:
            return [
                GraphQLError(
                    f"The document writes more than {MAX_LITERAL_ITEMS} list or input-object "
                    "items: pass long lists as variables."
                )
            ]
        return validate(schema, document, rules, hide_suggestions=hide_suggestions)

    return check


_DOCUMENTS: weakref.WeakKeyDictionary[GraphQLSchema, DocumentCache] = weakref.WeakKeyDictionary()


def validated_documents(schema: GraphQLSchema) -> DocumentCache:
    """The documents that validated cleanly against `schema` (chatr.schema.document_cache),
    which `validation_extension` fills and chatr.schema.execution runs from."""
    documents = _DOCUMENTS.get(schema)
    if documents is None:
        documents = _DOCUMENTS[schema] = DocumentCache()
    return documents


def validation_extension(settings: Settings) -> type[SchemaExtension]:
    """Runs `validator` in place of strawberry's validation (which then skips its own), and
    its parsing from the schema's DocumentCache when the same text validated before."""

    @functools.cache
    def validator_of(schema: GraphQLSchema) -> Callable[[DocumentNode], list[GraphQLError]]:
        return validator(schema, settings)

    class BoundedValidation(SchemaExtension):
        #: What chatr.schema.execution recognises: it does this extension's work itself.
        bounded_validation: ClassVar[bool] = True
        cached = False

        def on_parse(self) -> Iterator[None]:
            context = self.execution_context
            if context.query is not None and context.graphql_document is None:
                document = validated_documents(context.schema._schema).get(context.query)
                self.cached = document is not None
                # Parsed here, as strawberry's ParserCache did: a syntax error leaves
                # `schema.stream` as an exception, which the WebSocket handlers (chatr.app)
                # answer per protocol (4400 on graphql-transport-ws).
                context.graphql_document = document or parse(context.query, **context.parse_options)
            yield

        def on_validate(self) -> Iterator[None]:
            context = self.execution_context
            assert context.graphql_document is not None
            if self.cached:
                context.pre_execution_errors = []
            else:
                schema = context.schema._schema
                context.pre_execution_errors = validator_of(schema)(context.graphql_document)
                if not context.pre_execution_errors and context.query is not None:
                    validated_documents(schema).validated(context.query, context.graphql_document)
            yield

    return BoundedValidation


class HintlessExecutionContext(StrawberryGraphQLCoreExecutionContext):
    """Executes without "Did you mean" hints, e.g. in variable coercion errors (production)."""

    @classmethod
    def build(cls, *args: Any, **kwargs: Any) -> Any:
        kwargs["hide_suggestions"] = True
        return super().build(*args, **kwargs)
