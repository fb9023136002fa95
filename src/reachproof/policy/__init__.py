"""The policy DSL: grammar, AST, parser with positioned errors, semantic checks, compiler."""
