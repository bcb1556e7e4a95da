# This file is part of Tryton.  The COPYRIGHT file at the top level of
# this repository contains the full copyright notices and license terms.

from trytond.exceptions import UserError
from trytond.model.exceptions import ValidationError


class DomainError(ValidationError):
    pass


class ConditionError(ValidationError):
    pass


class TemplateError(ValidationError):
    pass


class EventError(ValidationError):
    pass


class ParentError(ValidationError):
    pass


class DelayError(ValidationError):
    pass


class SendingError(UserError):
    pass


class AddressFileError(UserError):
    pass


def error_text(exception):
    "Return the text of the exception to show, or else its name"
    return str(exception) or exception.__class__.__name__


class VariantError(ValidationError):
    pass


class BlueprintError(UserError):
    pass


class PreviewError(UserError):
    pass


class SendTestError(UserError):
    pass
