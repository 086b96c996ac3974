"""The project's exception tree."""


class HRMError(Exception):
    """Base class for errors this service raises on purpose."""


class RuleDefinitionError(HRMError):
    """A rule pack or the catalogue failed validation; nothing is loaded."""


class InputError(HRMError):
    """An input path or file cannot be read or parsed at all."""
