/* ops/batch: not implemented yet; answers "unsupported". */
#include <cjson/cJSON.h>

#include "ops.h"

enum ops_status
op_batch(struct op_run *run, const cJSON *body, cJSON **result)
{
	(void)run;
	(void)body;
	*result = ops_error("unsupported", "%s is not implemented", "batch");
	return OPS_DONE;
}
