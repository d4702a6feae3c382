from auth.routes import bp

__all__ = ["bp"]
