"""The lean participant page: the participant flow as plain server-rendered HTML.

Why it exists: Streamlit reruns the whole participant script for every click and keeps
each participant's session in one process over a websocket; bench/bench_capacity.py
measured how few concurrent participants one such process serves at p95 < 1 s. This
server renders the same flow (`study.session.StudyRunner`: the same wording, blinding,
media bytes, resume, attention checks, codes and store) as HTML forms without any
JavaScript: one GET per page, one POST per click, state only in the answer store and
the link. Any number of these processes can serve one study behind a reverse proxy
(`python -m app serve`, app/serve.py), because none of them holds a participant's state.

- app/lean/pages.py  the HTML (every text escaped), one function per page
- app/lean/server.py the server (Starlette/uvicorn): links, forms, media, the media-check page
"""
