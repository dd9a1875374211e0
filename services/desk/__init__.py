"""The analysts' desk: one web application for the three services' decisions that need a person.

`risk desk` serves it under gunicorn (`services.desk.app:create_app()`). It reads the decision store
(`RISK_DECISIONS_URL`), keeps its cases, comments and sessions there, and resolves a case as an outcome
through the outcomes door's own code, so a resolution feeds the labels, the window state and the quality
figures. Every page and action checks the signed-in identity's roles; every action is audited.
"""
