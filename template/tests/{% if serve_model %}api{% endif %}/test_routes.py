"""The service exposes exactly the routes its APIs promise: no more, no fewer."""

# The template's AST pass keeps this set in step with the APIs chosen in the questionnaire.
EXPECTED_ROUTES = {
    ("GET", "/livez"),
    ("GET", "/readyz"),
    ("GET", "/model"),
    ("GET", "/metrics"),
    # Your own routes go here, below the template's.
}


def served_routes(app):
    """(method, rule) for every view, leaving out Flask's implicit HEAD/OPTIONS and static files."""
    return {
        (method, rule.rule)
        for rule in app.url_map.iter_rules()
        if not rule.endpoint.endswith("static")
        for method in rule.methods - {"HEAD", "OPTIONS"}
    }


def test_every_expected_route_is_served(app):
    assert served_routes(app) >= EXPECTED_ROUTES


def test_no_route_is_served_that_was_not_chosen(app):
    assert served_routes(app) <= EXPECTED_ROUTES
