"""The dashboard: ``streamlit run src/dashboard/app.py``.

Two pages over the Pinot upsert tables: page views (topics 5-8, the default page) and the
clickstream tutorial (the sinks of its ksqlDB statements, at ``/clickstream``).
"""

from __future__ import annotations

import streamlit as st


def main() -> None:
    st.set_page_config(page_title="Page views", layout="wide")
    pages = [
        st.Page("pageviews_page.py", title="Page views", url_path="pageviews", default=True),
        st.Page("clickstream_page.py", title="Clickstream", url_path="clickstream"),
    ]
    st.navigation(pages).run()


# Streamlit runs this file as __main__; importing it (tests, tools) draws nothing.
if __name__ == "__main__":
    main()
