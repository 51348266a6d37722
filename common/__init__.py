"""Small helpers shared by `core/` and `study/` (standard library only, no torch, no numpy).

`core` and `study` never import each other; what both need lives here:
- `common.errors`: `ToolkitError`, the one root of every error shown as one line;
- `common.atomic`: write a folder under a hidden temporary name and rename it into place;
  clean the temporary folders a killed run left behind; `write_atomic` for one file;
- `common.names`: names spelled the same everywhere (pair sources, the study-id rule);
- `common.images`: the size limits for images we accept, checked from the file header
  before anything decodes the pixels;
- `common.yamlfile`: the one YAML loader (safe; a key given twice is an error naming both lines).
"""
