"""Layout figures shared by the Streamlit participant page and the lean page (app/lean/).

The page is capped at PAGE_WIDTH: at a 1300 px window a 904 px saliency stimulus (two
448 px halves) and two 496 px consistency patch sets (160 px tiles) show at their native
size; Streamlit's centred layout (704 px) would shrink them to ~78 %.
"""
PAGE_WIDTH = 1180
