"""`gankit lab`: a local page that trains gankit runs on 2-D data while it draws them (setup.py: the page's fields
and their config; session.py: the runs; server.py: the HTTP server; page.html: the page)."""
