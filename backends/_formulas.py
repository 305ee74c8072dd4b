"""An element-wise parameter update as data: its scalars, its state and its statements.

The optimizers (``xplayers.optim``) define their rules once as
``UpdateFormula`` objects and hand them down; a library that fuses updates
(CuPy) compiles each into one kernel, so this package knows no rule by name.
Each expression is written in the part of Python that is also C: names,
integer literals, ``+ - * /``, parentheses and ``sqrt(...)``, so one text is
both a line of a CUDA kernel and a NumPy expression (what the tests run).
Where arrays cannot be written (JAX), ``UpdateFormula.evaluate`` runs the same
statements functionally with the arrays' namespace, so that route needs no
second copy of any rule's arithmetic.
"""

from __future__ import annotations

import ast
import dataclasses
import keyword
from collections.abc import Sequence
from types import ModuleType
from typing import Any

#: The arrays every update reads, and the one it writes last.
INPUTS = ("w", "dw")
OUTPUT = "next_w"
#: Names a formula may not give its scalars or state: the fixed arrays, the one
#: function, and CuPy's element index.
_RESERVED = frozenset((*INPUTS, OUTPUT, "sqrt", "i"))
_OPERATORS = (ast.Add, ast.Sub, ast.Mult, ast.Div)


@dataclasses.dataclass(frozen=True)
class UpdateFormula:
    """next_w and the new state from (w, dw, state, scalars), element by element.

    ``name`` names the rule (and its kernel); ``scalars``: the float
    parameters, in call order; ``state``: the arrays updated in place, in call
    order; ``statements``: (target, expression) pairs run in order, each state
    array assigned once and ``next_w`` last. Checked when built: a ValueError
    names the formula and the statement at fault.
    """

    name: str
    scalars: tuple[str, ...]
    state: tuple[str, ...]
    statements: tuple[tuple[str, str], ...]

    def __post_init__(self) -> None:
        if not _is_name(self.name):
            raise ValueError(f"formula name {self.name!r} is not a lower-case identifier")
        declared = (*self.scalars, *self.state)
        for name in declared:
            if not _is_name(name) or name in _RESERVED:
                raise ValueError(
                    f"formula {self.name!r}: {name!r} cannot name a scalar or state "
                    f"(lower-case identifiers other than {sorted(_RESERVED)})"
                )
        if len(set(declared)) != len(declared):
            raise ValueError(f"formula {self.name!r}: scalar and state names repeat: {declared}")
        targets = [target for target, _ in self.statements]
        if sorted(targets[:-1]) != sorted(self.state) or targets[-1:] != [OUTPUT]:
            raise ValueError(
                f"formula {self.name!r} assigns {targets}: expected each of {list(self.state)} "
                f"once, then {OUTPUT!r}"
            )
        names = frozenset((*INPUTS, *declared))
        for target, expression in self.statements:
            where = f"formula {self.name!r}, {target} = {expression!r}"
            _check_expression(where, expression, names)
        compiled = tuple(
            (target, compile(expression.strip(), f"<{self.name}>", "eval"))
            for target, expression in self.statements
        )
        object.__setattr__(self, "_compiled", compiled)

    def evaluate(
        self, xp: ModuleType, w: Any, dw: Any, state: Sequence[Any], scalars: Sequence[Any]
    ) -> tuple[Any, tuple[Any, ...]]:
        """(next_w, new state) by running the statements with namespace ``xp``, writing
        no array: the route for libraries whose arrays cannot be written (JAX).

        ``scalars`` may be numbers or 0-d arrays (traced ones inside ``jax.jit``).
        """
        env: dict[str, Any] = {
            "w": w,
            "dw": dw,
            **dict(zip(self.state, state, strict=True)),
            **dict(zip(self.scalars, scalars, strict=True)),
        }
        # Checked when built: names, integer literals, + - * / and sqrt only.
        scope = {"__builtins__": {}, "sqrt": xp.sqrt}
        for target, code in self._compiled:
            env[target] = eval(code, scope, env)
        return env[OUTPUT], tuple(env[name] for name in self.state)


def _is_name(text: str) -> bool:
    return (
        isinstance(text, str)
        and text.isidentifier()
        and text.isascii()
        and text == text.lower()
        and not text.startswith("_")
        and not keyword.iskeyword(text)
    )


def _check_expression(where: str, expression: str, names: frozenset[str]) -> None:
    """ValueError unless ``expression`` reads only ``names`` through the operations
    that Python and C evaluate alike."""
    try:
        tree = ast.parse(expression.strip(), mode="eval")
    except SyntaxError as exc:
        raise ValueError(f"{where}: not an expression ({exc.msg})") from None
    _check_node(where, tree.body, names)


def _check_node(where: str, node: ast.expr, names: frozenset[str]) -> None:
    if isinstance(node, ast.Name):
        if node.id not in names:
            raise ValueError(f"{where}: {node.id!r} is none of {sorted(names)}")
    elif isinstance(node, ast.Constant):
        if type(node.value) is not int:  # 1e-8 is a double in C: pass it as a scalar
            raise ValueError(f"{where}: literal {node.value!r} is not an integer")
    elif isinstance(node, ast.BinOp):
        if not isinstance(node.op, _OPERATORS):
            raise ValueError(f"{where}: the only operators are + - * /")
        if isinstance(node.op, ast.Div) and not _reads_a_name(node):
            raise ValueError(f"{where}: C divides integer literals as integers")
        _check_node(where, node.left, names)
        _check_node(where, node.right, names)
    elif isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
        _check_node(where, node.operand, names)
    elif (
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Name)
        and node.func.id == "sqrt"
        and len(node.args) == 1
        and not node.keywords
        and _reads_a_name(node.args[0])
    ):
        _check_node(where, node.args[0], names)
    else:
        raise ValueError(f"{where}: {ast.unparse(node)!r} is not common to Python and C")


def _reads_a_name(node: ast.AST) -> bool:
    """True when ``node`` reads an array or scalar, so C computes it in the kernel's
    type (integer literals alone would be int arithmetic there)."""
    return any(isinstance(n, ast.Name) and n.id != "sqrt" for n in ast.walk(node))
