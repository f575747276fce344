"""A PlusPlus GraphQL API on graphene-django itself (see `serve.py`)."""
