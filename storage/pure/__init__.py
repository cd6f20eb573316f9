"""Storage's pure cores: no database, no files, no network; the store, the exports and the inspector call them.

record (the exchange record), decoding (Content-Encoding), search (the query language's parser),
endpoints (path templates), diff, har, redaction and secret_forms, snippets, surrogates, faults (fault
rules: checks, matching, decisions), dependency_graph (declared and observed dependencies merged),
shapes (mergeable summaries of JSON values and API operations) and openapi (documents made of them),
contract_check (an exchange checked against an OpenAPI contract) and openapi_diff (the changelog
between two OpenAPI documents, breaking changes marked).
"""
