# Importing the view modules attaches their routes to `bp` (phone sign-in, the profile page).
from auth import phone_routes, profile_routes  # noqa: F401
from auth.routes import bp

__all__ = ["bp"]
