"""The landing-event Lambda. ``handler.py`` ships alone at the root of the function's zip.

Import it as ``lambda_handler.handler`` (the module); nothing is re-exported here, so that name
keeps meaning the module and not its ``handler`` function.
"""
