"""The caps on the work one request may ask of the lab's server (all documented in the
README and returned by ``GET /api/options``): above them a request gets a 4xx answer, so
no tab can make the server hang or run out of memory."""

MAX_BODY_BYTES = 64_000        # a request body
MAX_RACE_STEPS = 1000          # steps of one race
MAX_RACE_OPTIMIZERS = 8        # optimizers in one race
MAX_VECTOR_LENGTH = 16         # entries of one variable of an expression
MAX_VARIABLES = 16             # variables of an expression
MAX_GRAPH_OPS = 400            # ops of a graph the page draws
MAX_MLP_WIDTH = 8              # units per layer of the backprop panel's MLP
MAX_MLP_LAYERS = 4             # layers of that MLP
MAX_TRAININGS = 4              # live training sessions at once (all tabs together)
MAX_TRAIN_WIDTH = 32           # units per hidden layer of a live training
MAX_TRAIN_LAYERS = 4           # hidden layers of a live training
MAX_TRAIN_SAMPLES = 1000       # points of its data set
MAX_TRAIN_STEPS = 20_000       # optimizer steps of one live training
GRID = 64                      # grid points per side of contours and decision boundaries


def as_dict():
    """The caps by name, for ``GET /api/options`` and the README."""
    return {name.lower(): value for name, value in globals().items()
            if name.isupper() and isinstance(value, int)}
