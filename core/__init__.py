"""The model side of the toolkit: data sets, prototype models, training, explanations.

Knows nothing of studies or Streamlit (see DESIGN.md).
"""
