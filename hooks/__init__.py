"""The template's post-generation AST pass, run by Copier as a task (see copier.yml `_tasks`)."""
