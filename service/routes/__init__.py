"""HTTP routes, one module per resource. Routes parse, call one handler, and shape the answer."""
