"""Analytics over the lake: the SQL guard, saved computations, tile figures, run reporting."""
