"""The generator page: the template's questionnaire in a browser, the project as a zip.

`make web` (or `python -m generator`) serves it on 127.0.0.1. Everything it shows comes from
copier.yml through Copier's own objects, and every project it renders is `copier copy`'s.
"""
