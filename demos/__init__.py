"""tornpool's demo applications: ``python -m demos.app`` (see ``docs/demo.md``)."""
