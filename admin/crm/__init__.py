from admin.crm.routes import bp

__all__ = ["bp"]
