"""fad: monadic, functional automatic differentiation."""
