"""The gateway's routers, one module per area; app.py includes them with their auth attached."""
