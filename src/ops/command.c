/* ops/command: not implemented yet; answers "unsupported". */
#include <cjson/cJSON.h>

#include "ops.h"

enum ops_status
op_command(struct op_run *run, const cJSON *body, cJSON **result)
{
	(void)run;
	(void)body;
	*result = ops_error("unsupported", "%s is not implemented", "command");
	return OPS_DONE;
}
