"""The web page and its JSON API: a thin layer over search/, regression/ and store/, like cli.py.

`service` holds the open store and the lazily loaded models, `uploads` turns uploaded bytes into a
checked image file, `app` declares the HTTP routes, `static/` is the page. Nothing here writes to
the store.
"""
