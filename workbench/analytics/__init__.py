"""Analytics over the lake: the query service (Spark's parser and plans, sensitivity, audit),
saved computations with typed parameters, the shared tile cache, tile figures."""
