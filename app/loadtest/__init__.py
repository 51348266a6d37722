"""Simulated participants that drive the real participant path (app/loadtest/harness.py).

    python -m app loadtest http://127.0.0.1:8080/ --home HOME --study ID --participants 50

- lean_client.py       the lean page's HTTP requests (app/lean/)
- streamlit_client.py  Streamlit's websocket protocol (app/participant.py)
- http.py              a keep-alive HTTP/1.1 client on asyncio
- harness.py           arrivals, the time limit, reading the store back, the figures
"""
