"""A safe evaluator of small Tensor expressions typed by a person (the ``graph`` and
``gradcheck`` commands, the lab's backprop panel), and their derivatives to draw.

    evaluate("e = a*b; d = e + c; L = d * f", variables)  -> the Tensor L
    differentiate(L, [a, b, c, f], 2)                     -> ∇L·1, with its graph

The text is parsed with :mod:`ast` and only this is allowed: numbers, the
given variables, ``pi`` and ``e``, the operators ``+ - * / ** @`` (and unary
minus), calls of known functions (``tanh(x)``, ``exp(x)``, ``maximum(x, y)``)
and of known Tensor methods (``x.tanh()``, ``x.sum()``, ``x.pow(2)``), and
statements ``name = expression`` separated by ``;`` or newlines (each assigned
name becomes the tensor's label, as in micrograd's pictures). Nothing else is
evaluated: no attribute access, no subscripts, no other names, no eval.

Variables are given as ``NAME=VALUE`` (``a=2``, ``x=1,2,3`` for a vector).
Evaluation is iterative, so a long expression cannot overflow the stack.
"""

import ast
import math
import operator

import tinygrad_opt as tg

MAX_LENGTH = 4000

FUNCTIONS = ("exp", "log", "sqrt", "sin", "cos", "tanh", "arctan", "atan", "sigmoid", "relu",
             "leaky_relu", "abs", "clamp", "maximum", "minimum", "sum", "mean", "softmax",
             "log_softmax", "logsumexp", "matmul")
METHODS = ("exp", "log", "sqrt", "sin", "cos", "tanh", "arctan", "sigmoid", "relu",
           "leaky_relu", "abs", "square", "clamp", "maximum", "minimum", "pow", "sum", "mean",
           "max", "min", "amax", "amin", "var", "std", "softmax", "log_softmax", "logsumexp",
           "neg", "add", "sub", "mul", "div", "matmul", "reshape", "transpose", "flatten")
CONSTANTS = {"pi": math.pi, "e": math.e}
BINARY = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul,
          ast.Div: operator.truediv, ast.Pow: operator.pow, ast.MatMult: operator.matmul}
UNARY = {ast.USub: operator.neg, ast.UAdd: operator.pos}


class ExpressionError(ValueError):
    """The expression or a variable is not acceptable (the message says why)."""


def parse_variables(specs):
    """["a=2", "x=1,2,3"] -> {"a": 2.0, "x": [1.0, 2.0, 3.0]} (in the order given)."""
    values = {}
    for spec in specs:
        name, sep, text = spec.partition("=")
        name = name.strip()
        if not sep or not name.isidentifier():
            raise ExpressionError(f"--var expects NAME=VALUE such as a=2 or x=1,2,3; got "
                                  f"{spec!r}.")
        if name in FUNCTIONS:
            raise ExpressionError(f"--var {name}: {name!r} is the name of a function; choose "
                                  "another.")
        try:
            numbers = [float(part) for part in text.split(",")]
        except ValueError:
            raise ExpressionError(f"--var {name}: the value must be a number or numbers "
                                  f"separated by commas, got {text!r}.") from None
        values[name] = numbers[0] if len(numbers) == 1 and "," not in text else numbers
    return values


def _describe(node):
    return type(node).__name__


def _check(tree):
    """Reject anything outside the allowed grammar, with a message naming it."""
    allowed = "only numbers, the variables, + - * / ** @, and calls such as tanh(x) or " \
              "x.tanh() are allowed"
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.Expr, ast.Expression, ast.Load, ast.Store,
                             ast.BinOp, ast.UnaryOp, ast.keyword)):
            continue
        if type(node) in BINARY or type(node) in UNARY:
            continue
        if isinstance(node, ast.Assign):
            if len(node.targets) != 1 or not isinstance(node.targets[0], ast.Name):
                raise ExpressionError("assignments must be 'name = expression'.")
            continue
        if isinstance(node, ast.Constant):
            if isinstance(node.value, bool) or not isinstance(node.value, (int, float)):
                raise ExpressionError(f"the constant {node.value!r} is not a number; {allowed}.")
            continue
        if isinstance(node, ast.Name):
            continue  # resolved during evaluation, against the variables
        if isinstance(node, ast.Call):
            func = node.func
            if isinstance(func, ast.Name):
                if func.id not in FUNCTIONS:
                    raise ExpressionError(f"unknown function {func.id!r}; use one of "
                                          f"{', '.join(FUNCTIONS)}.")
            elif isinstance(func, ast.Attribute):
                if func.attr not in METHODS:
                    raise ExpressionError(f"unknown method {func.attr!r}; use one of "
                                          f"{', '.join(METHODS)}.")
            else:
                raise ExpressionError(f"only functions and methods can be called; {allowed}.")
            if any(k.arg is None for k in node.keywords):
                raise ExpressionError("**keyword arguments are not allowed.")
            if any(isinstance(a, ast.Starred) for a in node.args):
                raise ExpressionError("*arguments are not allowed.")
            continue
        if isinstance(node, ast.Attribute):
            # only as the function of a call (checked there); `x.data` is refused
            continue
        raise ExpressionError(f"{_describe(node)} is not allowed in an expression; {allowed}.")
    called = {id(node.func) for node in ast.walk(tree) if isinstance(node, ast.Call)}
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and id(node) not in called:
            raise ExpressionError(f"attribute access (.{node.attr}) is not allowed; call a "
                                  "method instead, such as x.tanh().")


def evaluate(text, variables):
    """Evaluate ``text`` with ``variables`` ({name: Tensor or number}); returns the
    value of the last statement (an expression, or the last assignment)."""
    if len(text) > MAX_LENGTH:
        raise ExpressionError(f"the expression has {len(text)} characters; the limit is "
                              f"{MAX_LENGTH}.")
    try:
        tree = ast.parse(text, mode="exec")
    except (SyntaxError, ValueError, RecursionError, MemoryError) as error:
        detail = getattr(error, "msg", None) or str(error) or type(error).__name__
        raise ExpressionError(f"cannot parse the expression: {detail}.") from None
    if not tree.body:
        raise ExpressionError("the expression is empty.")
    _check(tree)
    env = dict(variables)
    result = None
    for statement in tree.body:
        if isinstance(statement, ast.Assign):
            target = statement.targets[0].id
            if target in FUNCTIONS:
                raise ExpressionError(f"cannot assign to {target!r}: it is a function.")
            result = _run(statement.value, env, tg)
            if isinstance(result, tg.Tensor) and result.name is None \
                    and not any(result is v for v in variables.values()):
                result.name = target
            env[target] = result
        elif isinstance(statement, ast.Expr):
            result = _run(statement.value, env, tg)
        else:
            raise ExpressionError(f"{_describe(statement)} is not allowed; write expressions "
                                  "or 'name = expression'.")
    return result


def _run(root, env, tg):
    """Post-order evaluation with an explicit stack."""
    stack, values = [(root, False)], []
    while stack:
        node, expanded = stack.pop()
        if not expanded:
            stack.append((node, True))
            for child in reversed(_children(node)):
                stack.append((child, False))
            continue
        n_children = len(_children(node))
        args = values[len(values) - n_children:] if n_children else []
        del values[len(values) - n_children:]
        values.append(_apply(node, args, env, tg))
    return values[0]


def _children(node):
    if isinstance(node, ast.BinOp):
        return [node.left, node.right]
    if isinstance(node, ast.UnaryOp):
        return [node.operand]
    if isinstance(node, ast.Call):
        receiver = [node.func.value] if isinstance(node.func, ast.Attribute) else []
        return receiver + list(node.args) + [k.value for k in node.keywords]
    return []


def _apply(node, args, env, tg):
    try:
        if isinstance(node, ast.Constant):
            return node.value
        if isinstance(node, ast.Name):
            if node.id in env:
                return env[node.id]
            if node.id in CONSTANTS:
                return CONSTANTS[node.id]
            if node.id in FUNCTIONS:
                raise ExpressionError(f"{node.id} is a function: call it, as in "
                                      f"{node.id}(x).")
            raise ExpressionError(f"unknown name {node.id!r}; define it with --var "
                                  f"{node.id}=VALUE.")
        if isinstance(node, ast.BinOp):
            left, right = args
            if not isinstance(left, tg.Tensor) and not isinstance(right, tg.Tensor):
                left, right = float(left), float(right)  # 2**10**10 overflows, never hangs
            return BINARY[type(node.op)](left, right)
        if isinstance(node, ast.UnaryOp):
            return UNARY[type(node.op)](args[0])
        if isinstance(node, ast.Call):
            n_kw = len(node.keywords)
            kwargs = {k.arg: v for k, v in zip(node.keywords, args[len(args) - n_kw:])}
            positional = args[:len(args) - n_kw]
            if isinstance(node.func, ast.Attribute):
                receiver, positional = positional[0], positional[1:]
                if not isinstance(receiver, tg.Tensor):
                    receiver = tg.tensor(float(receiver))
                return getattr(receiver, node.func.attr)(*positional, **kwargs)
            if positional and not isinstance(positional[0], tg.Tensor):
                positional[0] = tg.tensor(float(positional[0]))
            return getattr(tg, node.func.id)(*positional, **kwargs)
    except ExpressionError:
        raise
    except (ArithmeticError, ValueError, TypeError, RuntimeError, IndexError) as error:
        try:
            where = ast.unparse(node)
        except RecursionError:
            where = _describe(node)
        reason = "the result is too large" if isinstance(error, OverflowError) else error
        raise ExpressionError(f"evaluating {where!r} failed: {reason}") from None
    raise ExpressionError(f"{_describe(node)} is not allowed in an expression.")


def differentiate(root, variables, order):
    """The directional derivative ∇root·1 taken ``order - 1`` times, each with
    create_graph=True, so that the graph keeps every layer; an ExpressionError when a
    derivative no longer depends on the variables."""
    label = root.name or "f"
    for _ in range(order - 1):
        grads = tg.grad(root, variables, create_graph=True, allow_unused=True)
        terms = [g.sum() for g in grads if g is not None and g.requires_grad]
        if not terms:
            raise ExpressionError(f"the gradient of {label} does not depend on the variables "
                                  "(it is constant), so there is no graph to draw at this "
                                  "order.")
        root = terms[0]
        for term in terms[1:]:
            root = root + term
        label = f"∇({label})·1"
        root.name = label
    return root
