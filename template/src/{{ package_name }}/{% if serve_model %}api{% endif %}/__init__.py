"""The HTTP APIs, one Blueprint per module, mounted by `create_app` in app.py.

A module may also define `openapi_paths(components)`, returning its routes' part of the
OpenAPI document; openapi.py collects it from every mounted Blueprint.
"""
