from admin.people.routes import bp

__all__ = ["bp"]
