"""The researcher pages, in sidebar order. Each is `render(workspace) -> None`.

Kept out of a folder named `pages/`, which Streamlit would serve as separate URLs
without the password check of app/main.py.
"""
from __future__ import annotations

from app.views import analysis, builder, checklist, explain, export, models, monitor, sharing

PAGES = {
    "Models": models.render,
    "Explain an image": explain.render,
    "Sharing": sharing.render,
    "Study builder": builder.render,
    "Launch checklist": checklist.render,
    "Run and monitor": monitor.render,
    "Export": export.render,
    "Analysis": analysis.render,
}
