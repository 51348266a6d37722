"""The Streamlit app: a thin face over `core/` and `study/` (DESIGN.md)."""
